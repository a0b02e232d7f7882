//! Container and TTL nodes against a real geokeeper with a short container check
//! interval: a container goes once its last child is deleted (never before it had one), a
//! TTL node without children goes after its ttl (setData renews it), and a TTL node with
//! children stays. The server deletes them itself, so other sessions' watches fire.

mod support;

use std::time::{Duration, Instant};

use support::gk::Geokeeper;
use support::zkc::{connect, ev, fired, mode, persistent, within};
use zookeeper_client::{Acls, CreateMode, CreateOptions, EventType};

use EventType::{NodeChildrenChanged, NodeDeleted};

const CFG: &str = "extendedTypesEnabled=true\nznode.container.checkIntervalMs=500";

fn ttl(ms: u64) -> CreateOptions<'static> {
    CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(ms))
}

#[tokio::test]
async fn container_disappears_after_its_last_child_is_deleted() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    c.create("/c", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    c.create("/c/a", b"", &persistent()).await.unwrap();
    c.create("/c/b", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    c.delete("/c/a", None).await.unwrap();
    // Still one child: several check intervals pass and the container stays.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(c.check_stat("/c").await.unwrap().is_some());

    let (_, w) = c.check_and_watch_stat("/c").await.unwrap();
    let (_, pw) = c.list_and_watch_children("/").await.unwrap();
    let kids = c.list_children("/c").await.unwrap();
    c.delete(&format!("/c/{}", kids[0]), None).await.unwrap();
    let t = Instant::now();
    assert_eq!(
        ev(&within(Duration::from_secs(3), w.changed()).await),
        (NodeDeleted, "/c")
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(ev(&fired(pw).await), (NodeChildrenChanged, "/"));
    assert_eq!(c.check_stat("/c").await.unwrap(), None);
}

#[tokio::test]
async fn container_that_never_had_a_child_stays() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    c.create("/empty", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    // A persistent node that loses its children is no container.
    c.create("/plain", b"", &persistent()).await.unwrap();
    c.create("/plain/k", b"", &persistent()).await.unwrap();
    c.delete("/plain/k", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(c.check_stat("/empty").await.unwrap().is_some());
    assert!(c.check_stat("/plain").await.unwrap().is_some());
}

#[tokio::test]
async fn ttl_node_without_children_expires_after_its_ttl() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    // Before the request: the server stamps the node's mtime when the create arrives.
    let created = Instant::now();
    let (st, _) = c.create("/t", b"", &ttl(1000)).await.unwrap();
    assert_eq!(st.ephemeral_owner, 0);
    let (_, w) = c.check_and_watch_stat("/t").await.unwrap();
    assert_eq!(
        ev(&within(Duration::from_secs(4), w.changed()).await),
        (NodeDeleted, "/t")
    );
    let after = created.elapsed();
    assert!(
        after >= Duration::from_millis(950),
        "expired after {after:?}"
    );
    assert!(
        after <= Duration::from_millis(2500),
        "expired after {after:?}"
    );
}

#[tokio::test]
async fn set_data_renews_a_ttl_node() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    c.create("/t", b"", &ttl(1500)).await.unwrap();
    let created = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The server stamps the setData's mtime when the request arrives, which is after
    // this instant; its reply can come much later (an fsync on a busy disk).
    let touched = Instant::now();
    c.set_data("/t", b"touch", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1900).saturating_sub(created.elapsed())).await;
    // 1.9 s after the create, 0.9 s after the setData: still there.
    assert!(c.check_stat("/t").await.unwrap().is_some());
    let (_, w) = c.check_and_watch_stat("/t").await.unwrap();
    assert_eq!(
        ev(&within(Duration::from_secs(4), w.changed()).await),
        (NodeDeleted, "/t")
    );
    assert!(touched.elapsed() >= Duration::from_millis(1450));
}

#[tokio::test]
async fn ttl_node_with_children_is_kept_until_they_are_gone() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    c.create("/tp", b"", &ttl(300)).await.unwrap();
    c.create("/tp/k", b"", &persistent()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(c.check_stat("/tp").await.unwrap().is_some());
    let (_, w) = c.check_and_watch_stat("/tp").await.unwrap();
    c.delete("/tp/k", None).await.unwrap();
    // Its ttl ran out long ago: it goes at the next check.
    assert_eq!(
        ev(&within(Duration::from_secs(3), w.changed()).await),
        (NodeDeleted, "/tp")
    );
    // A sequential TTL node is a TTL node too.
    let seq = CreateMode::PersistentSequential
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(300));
    let (_, n) = c.create("/s-", b"", &seq).await.unwrap();
    let (_, w) = c.check_and_watch_stat(&format!("/s-{n}")).await.unwrap();
    assert_eq!(
        ev(&within(Duration::from_secs(3), w.changed()).await).0,
        NodeDeleted
    );
}

#[tokio::test]
async fn container_and_ttl_nodes_outlive_their_creators_session() {
    let gk = Geokeeper::start(CFG);
    let c = connect(gk.addr).await;
    let other = connect(gk.addr).await;
    c.create("/t", b"", &ttl(100_000)).await.unwrap();
    c.create("/c", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    c.create("/c/e", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    c.create("/t/e", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    // Neither is an ephemeral of the session.
    let mut eph = c.list_ephemerals("/").await.unwrap();
    eph.sort();
    assert_eq!(eph, ["/c/e", "/t/e"]);
    let (_, w) = other.check_and_watch_stat("/c").await.unwrap();
    drop(c);
    // The session's ephemeral was the container's last child: the container goes too.
    assert_eq!(
        ev(&within(Duration::from_secs(3), w.changed()).await),
        (NodeDeleted, "/c")
    );
    assert!(other.check_stat("/t").await.unwrap().is_some());
    assert_eq!(other.check_stat("/t/e").await.unwrap(), None);
}
