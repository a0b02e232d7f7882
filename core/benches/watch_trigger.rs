//! Watch triggering costs in proportion to the watchers hit, not to the size of the
//! table: one change is timed against tables of 0 and 100,000 watches held by 10,000
//! connections, with and without a recursive watch (which makes every trigger walk the
//! changed path's ancestors).

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use geokeeper_core::tree::Change;
use geokeeper_core::watch::WatchManager;

fn table(connections: u64, per_connection: u64) -> WatchManager {
    let mut m = WatchManager::new();
    for c in 0..connections {
        for i in 0..per_connection {
            m.add_data_watch(
                &format!("/app/svc{}/node{}", c % 100, c * per_connection + i),
                c,
            );
        }
    }
    m
}

fn data_changed(path: &str) -> Change {
    Change::DataChanged {
        path: path.to_owned(),
        acl: Arc::from(Vec::new()),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("trigger_one_change");
    for (name, connections, per) in [
        ("empty", 0u64, 0u64),
        ("100k_watches_10k_conns", 10_000, 10),
    ] {
        let mut m = table(connections, per);
        // A change nobody watches.
        g.bench_function(BenchmarkId::new("miss", name), |b| {
            let change = [data_changed("/app/svc1/unwatched")];
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                m.trigger(black_box(&change), &mut out);
            })
        });
        // A change one persistent watcher sees (it stays, so every iteration hits).
        m.add_persistent("/app/svc2/hot", 42, false);
        g.bench_function(BenchmarkId::new("hit_one", name), |b| {
            let change = [data_changed("/app/svc2/hot")];
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                m.trigger(black_box(&change), &mut out);
                assert_eq!(out.len(), 1);
            })
        });
        // With a recursive watch somewhere, every trigger walks its path's ancestors.
        m.add_persistent("/elsewhere", 43, true);
        g.bench_function(BenchmarkId::new("miss_with_recursive", name), |b| {
            let change = [data_changed("/app/svc1/deep/er/path")];
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                m.trigger(black_box(&change), &mut out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
