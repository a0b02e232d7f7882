//! Snapshot cost per node: `snapshot::write_tree` (walk, encode, checksum, write, fsync,
//! rename) and `snapshot::load` (read, verify both seals, rebuild the tree) for a tree of
//! 100,000 nodes of 100 bytes, built through `DataTree::apply` as the server builds it.
//! Restart time and the pause a snapshot costs grow with this figure, so throughput is
//! reported in nodes: criterion's elem/s gives ns per node directly.
//!
//! The files go to a temporary directory, so the figures include that disk's fsync.

use std::path::Path;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geokeeper_core::acl::open_acl_unsafe;
use geokeeper_core::proto::txn::{CreateTxn, TxnBody, TxnHeader};
use geokeeper_core::snapshot;
use geokeeper_core::tree::{DataTree, TxnResult};

const PARENTS: u64 = 100;
const CHILDREN: u64 = 1_000;

/// `/snap/p<0..100>/n<0..1000>`, each node holding 100 bytes.
fn tree() -> DataTree {
    let mut tree = DataTree::new();
    let value = Bytes::from(vec![b'v'; 100]);
    let mut zxid = 0;
    let mut changes = Vec::new();
    let mut create = |tree: &mut DataTree, path: String| {
        zxid += 1;
        let body = TxnBody::Create(CreateTxn {
            path,
            data: Some(value.clone()),
            acl: open_acl_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
        });
        let h = TxnHeader {
            client_id: 0,
            cxid: 0,
            zxid,
            time: 1_700_000_000_000,
            r#type: body.txn_type(),
        };
        changes.clear();
        let r = tree.apply(&h, &body, &mut changes);
        assert!(matches!(r, TxnResult::Created { .. }), "{r:?}");
    };
    create(&mut tree, "/snap".into());
    for p in 0..PARENTS {
        create(&mut tree, format!("/snap/p{p}"));
        for c in 0..CHILDREN {
            create(&mut tree, format!("/snap/p{p}/n{c}"));
        }
    }
    tree
}

fn bench(c: &mut Criterion) {
    let tree = tree();
    let nodes = tree.node_count();
    assert!(nodes as u64 > PARENTS * CHILDREN);
    // A server's worth of open sessions rides along in every snapshot.
    let sessions: Vec<(i64, i32)> = (1..=1_000).map(|s| (s, 30_000)).collect();
    let dir = tempfile::tempdir().unwrap();

    let mut g = c.benchmark_group("snapshot_100k_nodes_100B");
    g.sample_size(10);
    g.throughput(Throughput::Elements(nodes as u64));
    // Every write has the same zxid, so each replaces the last.
    g.bench_function("write_tree", |b| {
        b.iter(|| snapshot::write_tree(dir.path(), &tree, &sessions).unwrap())
    });

    let path = snapshot::write_tree(dir.path(), &tree, &sessions).unwrap();
    check_load(&path, nodes);
    // The loaded tree is dropped outside the clock: a restart keeps it.
    g.bench_function("load", |b| {
        b.iter_with_large_drop(|| snapshot::load(&path).unwrap())
    });
    g.finish();
}

fn check_load(path: &Path, nodes: usize) {
    let loaded = snapshot::load(path).unwrap();
    assert_eq!(loaded.tree.node_count(), nodes);
    assert_eq!(loaded.sessions.len(), 1_000);
    assert!(loaded.tree.get("/snap/p99/n999").is_some());
}

criterion_group!(benches, bench);
criterion_main!(benches);
