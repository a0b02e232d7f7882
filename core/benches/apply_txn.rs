//! The cost of `DataTree::apply` for each transaction kind: the single-threaded core
//! applies every committed write, so this bounds the write throughput of one server.
//!
//! The tree holds ~10,000 nodes of 100 bytes (`/app/svc<0..100>/node<0..100>`), so hash
//! lookups and child sets are of a realistic size. Every timed apply must succeed on a
//! valid tree, so the ops are timed in chunks: what an op needs is prepared untimed
//! (a delete's node is created first, a closeSession's ephemeral too), the chunk is
//! applied under the clock, and what it left is undone untimed (created nodes are deleted
//! again). The tree is thus back to its starting size after every chunk, which the bench
//! asserts. Only the public, stable surface of the tree is used (`new`, `apply`, `get`,
//! `node_count`), never the `Node` fields.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use geokeeper_core::acl::{open_acl_unsafe, read_acl_unsafe};
use geokeeper_core::proto::txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DeleteTxn, ErrorTxn, SetAclTxn, SetDataTxn, TxnBody, TxnHeader,
};
use geokeeper_core::proto::ErrorCode;
use geokeeper_core::tree::{Change, DataTree, TxnResult};

const PARENTS: u64 = 100;
const CHILDREN: u64 = 100;
const BASE_NODES: u64 = PARENTS * CHILDREN;
/// Ops timed per chunk: 10% of the tree, so the prepared nodes never dwarf it.
const CHUNK: u64 = 1_000;
/// Sessions (as a header's client id) that own no ephemerals in the base tree.
const SESSION_BASE: i64 = 0x0100_0000_0000;

fn value() -> Bytes {
    Bytes::from(vec![b'v'; 100])
}

fn create_txn(path: String) -> CreateTxn {
    CreateTxn {
        path,
        data: Some(value()),
        acl: open_acl_unsafe(),
        ephemeral: false,
        // −1: the apply step computes the parent's cversion, as for an old log.
        parent_cversion: -1,
    }
}

/// A node that exists only for op `i`, spread over the base tree's parents.
fn fresh(i: u64) -> String {
    format!("/app/svc{}/new{i}", i % PARENTS)
}

/// One of the base tree's 10,000 nodes, visited round-robin.
fn existing(i: u64) -> String {
    format!("/app/svc{}/node{}", i % PARENTS, (i / PARENTS) % CHILDREN)
}

/// How many times op `i` has come back to its base node: a setData/setACL version that
/// rises on every visit.
fn round(i: u64) -> i32 {
    (i / BASE_NODES) as i32 + 1
}

fn delete(path: String) -> (i64, TxnBody) {
    (0, TxnBody::Delete(DeleteTxn { path }))
}

/// One transaction kind: what op `i` needs first (untimed), op `i` itself (timed), and
/// what undoes it (untimed).
struct Case {
    name: &'static str,
    before: fn(u64) -> Vec<(i64, TxnBody)>,
    op: fn(u64) -> (i64, TxnBody),
    after: fn(u64) -> Vec<(i64, TxnBody)>,
    /// The error txn reports its error; every other op must succeed.
    expect_error: bool,
}

fn none(_: u64) -> Vec<(i64, TxnBody)> {
    Vec::new()
}

fn delete_fresh(i: u64) -> Vec<(i64, TxnBody)> {
    vec![delete(fresh(i))]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "create",
            before: none,
            op: |i| (0, TxnBody::Create(create_txn(fresh(i)))),
            after: delete_fresh,
            expect_error: false,
        },
        Case {
            name: "create2",
            before: none,
            op: |i| (0, TxnBody::Create2(create_txn(fresh(i)))),
            after: delete_fresh,
            expect_error: false,
        },
        Case {
            name: "createContainer",
            before: none,
            op: |i| {
                let t = CreateContainerTxn {
                    path: fresh(i),
                    data: Some(value()),
                    acl: open_acl_unsafe(),
                    parent_cversion: -1,
                };
                (0, TxnBody::CreateContainer(t))
            },
            after: delete_fresh,
            expect_error: false,
        },
        Case {
            name: "createTTL",
            before: none,
            op: |i| {
                let t = CreateTtlTxn {
                    path: fresh(i),
                    data: Some(value()),
                    acl: open_acl_unsafe(),
                    parent_cversion: -1,
                    ttl: 60_000,
                };
                (0, TxnBody::CreateTtl(t))
            },
            after: delete_fresh,
            expect_error: false,
        },
        Case {
            name: "delete",
            before: |i| vec![(0, TxnBody::Create(create_txn(fresh(i))))],
            op: |i| delete(fresh(i)),
            after: none,
            expect_error: false,
        },
        Case {
            name: "setData_100B",
            before: none,
            op: |i| {
                let t = SetDataTxn {
                    path: existing(i),
                    data: Some(value()),
                    version: round(i),
                };
                (0, TxnBody::SetData(t))
            },
            after: none,
            expect_error: false,
        },
        Case {
            name: "setACL",
            before: none,
            // Alternates each node between two ACLs the tree already holds.
            op: |i| {
                let acl = if round(i) % 2 == 0 {
                    open_acl_unsafe()
                } else {
                    read_acl_unsafe()
                };
                let t = SetAclTxn {
                    path: existing(i),
                    acl,
                    version: round(i),
                };
                (0, TxnBody::SetAcl(t))
            },
            after: none,
            expect_error: false,
        },
        Case {
            // ZooKeeper only logs a check inside a multi; alone it is the apply step's
            // dispatch cost.
            name: "check",
            before: none,
            op: |i| {
                let t = CheckVersionTxn {
                    path: existing(i),
                    version: 0,
                };
                (0, TxnBody::Check(t))
            },
            after: none,
            expect_error: false,
        },
        Case {
            name: "multi_create_setData",
            before: none,
            op: |i| {
                let set = SetDataTxn {
                    path: fresh(i),
                    data: Some(value()),
                    version: 1,
                };
                let ops = vec![TxnBody::Create(create_txn(fresh(i))), TxnBody::SetData(set)];
                (0, TxnBody::Multi(ops))
            },
            after: delete_fresh,
            expect_error: false,
        },
        Case {
            name: "createSession",
            before: none,
            op: |i| {
                let t = CreateSessionTxn { time_out: 30_000 };
                (SESSION_BASE + i as i64, TxnBody::CreateSession(t))
            },
            after: none,
            expect_error: false,
        },
        Case {
            // The usual closeSession: one ephemeral goes with the session.
            name: "closeSession_1_ephemeral",
            before: |i| {
                let mut t = create_txn(fresh(i));
                t.ephemeral = true;
                vec![(SESSION_BASE + i as i64, TxnBody::Create(t))]
            },
            op: |i| {
                let t = CloseSessionTxn {
                    paths2_delete: vec![fresh(i)],
                };
                (SESSION_BASE + i as i64, TxnBody::CloseSession(t))
            },
            after: none,
            expect_error: false,
        },
        Case {
            name: "error",
            before: none,
            op: |_| {
                let t = ErrorTxn {
                    err: ErrorCode::NoNode.code(),
                };
                (0, TxnBody::Error(t))
            },
            after: none,
            expect_error: true,
        },
    ]
}

fn failed(r: &TxnResult) -> bool {
    match r {
        TxnResult::Error(_) => true,
        TxnResult::Multi(rs) => rs.iter().any(failed),
        _ => false,
    }
}

/// The tree and the counters that keep every op's zxid and paths unique.
struct Bed {
    tree: DataTree,
    zxid: i64,
    /// Ops issued so far, over all cases: op `i` never reuses a path.
    seq: u64,
    changes: Vec<Change>,
}

impl Bed {
    fn new() -> Bed {
        let mut bed = Bed {
            tree: DataTree::new(),
            zxid: 0,
            seq: 0,
            changes: Vec::new(),
        };
        bed.apply_ok(0, TxnBody::Create(create_txn("/app".into())));
        for p in 0..PARENTS {
            bed.apply_ok(0, TxnBody::Create(create_txn(format!("/app/svc{p}"))));
            for c in 0..CHILDREN {
                let path = format!("/app/svc{p}/node{c}");
                bed.apply_ok(0, TxnBody::Create(create_txn(path)));
            }
        }
        bed
    }

    fn header(&mut self, client_id: i64, body: &TxnBody) -> TxnHeader {
        self.zxid += 1;
        TxnHeader {
            client_id,
            cxid: 0,
            zxid: self.zxid,
            time: 1_700_000_000_000 + self.zxid,
            r#type: body.txn_type(),
        }
    }

    fn apply_ok(&mut self, client_id: i64, body: TxnBody) {
        let h = self.header(client_id, &body);
        self.changes.clear();
        let r = self.tree.apply(&h, &body, &mut self.changes);
        assert!(!failed(&r), "untimed {body:?}: {r:?}");
    }

    /// Applies `iters` ops of `case`, timing only the applies.
    fn run(&mut self, case: &Case, iters: u64) -> Duration {
        let size = self.tree.node_count();
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = (iters - done).min(CHUNK);
            let first = self.seq;
            self.seq += n;
            for i in first..first + n {
                for (client, body) in (case.before)(i) {
                    self.apply_ok(client, body);
                }
            }
            let ops: Vec<(TxnHeader, TxnBody)> = (first..first + n)
                .map(|i| {
                    let (client, body) = (case.op)(i);
                    (self.header(client, &body), body)
                })
                .collect();
            let mut errors = 0;
            let start = Instant::now();
            for (h, body) in &ops {
                self.changes.clear();
                if failed(&self.tree.apply(h, body, &mut self.changes)) {
                    errors += 1;
                }
            }
            total += start.elapsed();
            let expected = if case.expect_error { n } else { 0 };
            assert_eq!(errors, expected, "{}: failed applies", case.name);
            for i in first..first + n {
                for (client, body) in (case.after)(i) {
                    self.apply_ok(client, body);
                }
            }
            done += n;
        }
        assert_eq!(self.tree.node_count(), size, "{}: tree restored", case.name);
        total
    }
}

fn bench(c: &mut Criterion) {
    let mut bed = Bed::new();
    assert!(bed.tree.get("/app/svc99/node99").is_some());
    assert!(bed.tree.node_count() as u64 > BASE_NODES);
    let mut g = c.benchmark_group("apply");
    for case in cases() {
        g.bench_function(case.name, |b| b.iter_custom(|iters| bed.run(&case, iters)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
