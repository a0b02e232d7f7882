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
use geokeeper_relay::learner_link::{follow, LinkSettings};
use support::java_ensemble::JavaEnsemble;
use support::rawzk::{decode_body, Body, RawZk};
use tokio::sync::mpsc;

/// Every znode's stat and data, by path.
type Dump = BTreeMap<String, (Stat, Option<Vec<u8>>)>;

fn session(addr: SocketAddr) -> RawZk {
    let z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("connect");
    assert!(z.response.time_out > 0, "session refused by {addr}");
    z
}

/// Creates `/gw/<prefix><i>` for i in 0..n (data of varying length, one ACL of two kinds),
/// and returns the last zxid seen.
fn write(addr: SocketAddr, prefix: &str, n: usize) -> i64 {
    let mut z = session(addr);
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

fn assert_same(server: &Dump, learner: &Dump) {
    for (path, v) in server {
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
        quorum_addrs: e.members.iter().map(|m| m.quorum).collect(),
        connect_timeout: Duration::from_secs(1),
        sync_timeout: Duration::from_secs(10),
        follow_timeout: Duration::from_secs(5),
        max_len: geokeeper_core::proto::frame::max_record_len(
            geokeeper_core::proto::frame::DEFAULT_MAX_BUFFER,
            None,
        ),
    };
    let (tx, mut rx) = mpsc::channel(4096);
    let start = LearnerStart {
        server_id: 42,
        last_zxid: 0,
        accepted_epoch: 0,
        current_epoch: 0,
    };
    let link = tokio::spawn(async move { follow(&settings, start, &tx, Vec::new).await });
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
        quorum_addrs: e.members.iter().map(|m| m.quorum).collect(),
        connect_timeout: Duration::from_secs(1),
        sync_timeout: Duration::from_secs(10),
        follow_timeout: Duration::from_secs(5),
        max_len: 1 << 21,
    };
    let (tx, mut rx) = mpsc::channel(4096);
    let link = tokio::spawn(async move { follow(&settings, start, &tx, Vec::new).await });
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
